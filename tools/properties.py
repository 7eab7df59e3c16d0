"""RDKit descriptors computed locally: ``molecule_properties("CC(=O)Oc1ccccc1C(=O)O")``.

Why local: it works offline and for structures PubChem has never seen; the record's ``source`` says the
values were computed, not looked up, so answers cite them as ``[RDKit]``.
"""

from __future__ import annotations

from biomedgpt.core.chem import parse_smiles
from biomedgpt.tools.records import MoleculeProperties

# Lipinski's rule of five (Lipinski et al., 1997): at most one violation passes.
LIPINSKI_MAX_MASS = 500.0
LIPINSKI_MAX_LOGP = 5.0
LIPINSKI_MAX_DONORS = 5
LIPINSKI_MAX_ACCEPTORS = 10
LIPINSKI_ALLOWED_VIOLATIONS = 1


def molecule_properties(smiles: str) -> MoleculeProperties:
    """Formula, masses, Crippen logP, TPSA, H-bond donors/acceptors (Lipinski's NH+OH and N+O counts), rotatable bonds,
    rings, aromatic rings, heavy atoms and the rule-of-five verdict; ``InvalidSmilesError`` names bad input."""
    # deferred: RDKit costs ~0.2 s to import
    from rdkit import Chem, rdBase
    from rdkit.Chem import Crippen, Descriptors, Lipinski, rdMolDescriptors

    mol = parse_smiles(smiles)

    average_mass = Descriptors.MolWt(mol)
    logp = Crippen.MolLogP(mol)
    # Lipinski's own definitions (the ones PubChem's counts agree with for simple molecules):
    # donors = N-H and O-H groups, acceptors = all N and O atoms.
    donors = Lipinski.NHOHCount(mol)
    acceptors = Lipinski.NOCount(mol)
    violations = sum((
        average_mass > LIPINSKI_MAX_MASS,
        logp > LIPINSKI_MAX_LOGP,
        donors > LIPINSKI_MAX_DONORS,
        acceptors > LIPINSKI_MAX_ACCEPTORS,
    ))
    with rdBase.BlockLogs():  # InChI generation warns on stderr for unusual valences
        inchi, inchikey = Chem.MolToInchi(mol), Chem.MolToInchiKey(mol)
    canonical = Chem.MolToSmiles(mol)
    return MoleculeProperties(
        smiles=canonical,
        given_smiles=smiles.strip() if smiles.strip() != canonical else None,
        formula=rdMolDescriptors.CalcMolFormula(mol),
        # kept to two more decimals than answers show, so rounding for display is not done twice (1.3747 -> 1.37)
        average_mass=round(average_mass, 4),
        exact_mass=round(Descriptors.ExactMolWt(mol), 6),
        logp=round(logp, 4),
        tpsa=round(rdMolDescriptors.CalcTPSA(mol), 2),
        h_bond_donors=int(donors),
        h_bond_acceptors=int(acceptors),
        rotatable_bonds=int(rdMolDescriptors.CalcNumRotatableBonds(mol)),
        rings=int(rdMolDescriptors.CalcNumRings(mol)),
        aromatic_rings=int(rdMolDescriptors.CalcNumAromaticRings(mol)),
        heavy_atoms=int(mol.GetNumHeavyAtoms()),
        lipinski_violations=int(violations),
        lipinski_pass=violations <= LIPINSKI_ALLOWED_VIOLATIONS,
        inchikey=inchikey or None,
        inchi=inchi or None,
        formal_charge=int(Chem.GetFormalCharge(mol)),
        stereocenters=len(Chem.FindMolChiralCenters(mol, includeUnassigned=True, useLegacyImplementation=False)),
        fraction_csp3=round(rdMolDescriptors.CalcFractionCSP3(mol), 4),
    )
