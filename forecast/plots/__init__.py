"""The run's figures as PNG files: common (figure, PNG, fonts), run (one series), loss,
panel (many series), backtest. matplotlib objects only, no pyplot: a library call changes
no backend, rcParams or warning filter of the caller's process."""
