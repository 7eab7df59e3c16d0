"""The ground floor of biomedgpt: ``from biomedgpt.core import errors, settings, files, chem, sources, datasets``.

Every room (model, tools, training, agent) and the front door import from here; this package imports
nothing else of the project. Each piece of domain knowledge that more than one room needs is defined
here once: the error types, the settings, atomic writes, SMILES and sequence parsing, citation labels,
and the data-set readers.
"""
