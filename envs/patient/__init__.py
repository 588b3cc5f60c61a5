"""``rounds/PatientSim-v0``: a consultation with a simulated patient (docs/patient.md)."""
