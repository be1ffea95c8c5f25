"""The Lightning side: the callback, the measurement session, the sinks, the classification module.

This wing builds on the measuring core (``lga_lightning.core``) and Lightning; it never imports
the search wing. :class:`~lga_lightning.training.callback.NTKMetrics` measures during any
model's training through one :class:`~lga_lightning.training.session.MeasurementSession`, which
also serves the search, the study and Ray Tune trials; every surface hands its records to
:mod:`~lga_lightning.training.sinks`.
"""
