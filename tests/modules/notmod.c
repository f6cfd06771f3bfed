/* notmod.c - a shared object that is not a Tide module (no tide_module). */
int notmod_answer(void) { return 42; }
