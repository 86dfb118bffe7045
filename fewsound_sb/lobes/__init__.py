"""Sound encoders E that map raw audio to an embedding (see ``encoders.py``).

The encoder contract
--------------------
Every sound encoder exported by :mod:`fewsound_sb.lobes.encoders` is a
``torch.nn.Module`` with:

- ``output_dim`` (int): the embedding size; ``forward`` maps waveforms
  ``[B, T]`` (or ``[B, 1, T]``) to ``[B, output_dim]``. YAMLs read it with
  ``encoder_dim: !apply:getattr [!ref <encoder>, output_dim]``.
- ``sample_rate`` (int, Hz): the rate its input is expected at. A constructor
  argument, set from the YAML's ``sample_rate``; ``FewSoundBrain`` refuses to
  train when it differs from the data's.
- ``input_length`` (int or None): the fixed number of samples ``forward``
  needs, or None when any length works. A fixed-length encoder raises
  ValueError naming the expected length on any other length.

``FewSoundBrain`` relies on nothing else, so a new encoder needs only these
three attributes and an entry in ``encoders.py`` (and in the parametrised
``tests/unit/test_lobes.py::test_encoder_contract``).

Example
-------
>>> from fewsound_sb.lobes.encoders import SoundStreamEncoder
>>> encoder = SoundStreamEncoder(input_length=1024, channels=2, norm="channel")
>>> encoder.output_dim, encoder.sample_rate, encoder.input_length
(128, 22050, 1024)
"""
