"""What each command does from start to finish, built from the layers below."""
