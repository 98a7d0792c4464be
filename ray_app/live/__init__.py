"""The live platform: what `make run` leaves running, each part a Ray job (``jobs``), the scheduled work they do
(``schedule``), and the pipeline's health as one reading (``monitor``) that `ray-app status` prints and the monitor
job exports to Prometheus."""
