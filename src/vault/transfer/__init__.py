"""Export files and foreign archives as formats: framing, reading, writing, tar/ZIP members.
The operations that use them (`vault export`, `vault import`) live in `vault.operations`."""
