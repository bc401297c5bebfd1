"""Stress scenario: many targets while scrapers and SIGHUPs hit the monitor (issue 9's "Done when").

    .venv/bin/python -m bench.stress                          # 10,000 targets @ 10 s, 60 s per phase
    .venv/bin/python -m bench.stress --targets 1000 --duration 20 --json

One monitor, two steady windows of --duration seconds each, after one warm-up:

  quiet   checking only (a light /api/status?history=0 sample every --sample-every s)
  loaded  the same, plus GET /metrics and GET /api/status every --scrape-every s (each on its
          own thread, on a fixed schedule; a fetch that overruns delays only its own next one),
          and a SIGHUP every --sighup-every s (--reload same: the file unchanged; toggle: one
          target added, then removed again, so every reload has work to do); --load picks
          any of metrics,status,sighup, to attribute the lag to one of them

For each phase it prints the schedule lag p50/p99/max (the monitor's own, from /api/status,
and the farm's view of every check in the window), missed checks, CPU, the endpoints' answer
times, the alerts the fake Bot API received (every target is healthy: each one is false), and
for the loaded phase the reload cost as visible from outside (SIGHUP sent → the
``config_reloaded`` event's time stamp) beside what the monitor logs of it (``reload timing
off_loop_seconds=… on_loop_seconds=…``). Nothing is asserted: it prints figures.

Modules: ``options`` (the command line), ``load`` (fetchers, SIGHUPs), ``readings`` (lag
samples, events, log timings), ``phase`` (one steady window), ``report``, ``run`` (entry point).
"""
