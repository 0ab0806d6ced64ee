"""ISO images: read an installer's facts (`image`), patch a copy to boot into a kickstart (`patch`), the small
kickstart CD (`kickstart`), synthetic installer media for tests and the simulator (`synthetic`), boot loader
configuration text (`bootcfg`).

Pure format code over pycdlib (imported inside the functions that use it); nothing here spawns a process.
"""
