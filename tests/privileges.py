"""Running a command with less than root's powers, for tests that need a file vault
cannot read (a plain module: conftest modules are not imported directly)."""

#: run a command as root without the capabilities that let root read or search any file
#: whatever its mode: still root (so it reaches the checkout's venv, even from a clone in
#: a 0700 directory) but refused what another user's 0600 file or 0700 directory refuses
WITHOUT_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
