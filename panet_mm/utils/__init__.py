"""The ground floor: helpers every other floor shares, importing no other part of panet_mm.

* :mod:`.errors` - ``PanetMMError`` (the base of every panet_mm error) and ``ParameterError``.
* :mod:`.fileio` - the one atomic writer (bytes, text, images, checkpoints).
* :mod:`.checkpoint` - the one weights-only loader; unwrapping, comparing and listing state dicts.
* :mod:`.config` - reading a config file, naming the file and line of a mistake made while editing it.
* :mod:`.memory`, :mod:`.compat` - memory measurement; differences between the supported stacks.
* :mod:`.denormals` - flushing denormal floats to zero in torch's CPU threads (for the tools).
"""
