"""biomedgpt.tools: PubChem, UniProt, literature store and the evidence tools the agent calls."""
