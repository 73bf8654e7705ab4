from forecast.cli.app import main

main()
