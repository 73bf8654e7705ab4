"""Run directories and every file in them, one job per module:

    layout   where runs live: partial and finished folders, their names, the lock, which
             files a run holds, finding runs, refusing to write over them
    atomic   writing a file whole or not at all; a failed write as one line
    write    what a training run and a backtest write
    read     opening a run, its model, scalers and intervals; the `forecast runs` table

Import from the module that does the job (`from forecast.runs import read`).
"""
