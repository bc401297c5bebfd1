"""The scale bench: ``python -m bench.run`` (sizes × systems) and ``python -m bench.stress``.

bench/README.md says what runs and what each printed figure means. Nothing here is imported
by the monitor; the helpers (farm, fake_telegram, loadgen, probe_driver) are started as
``python -m bench.<name>`` and import only the stdlib-light modules beside them.
"""
