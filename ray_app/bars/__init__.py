"""The bars stage's tools beside the stream: parity of the bars built from trades with the vendor's own
(``parity``), and the upgrade of data stored by earlier versions (``upgrade``)."""
