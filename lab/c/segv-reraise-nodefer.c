/* segv-reraise.c with SA_NODEFER: the re-raised signal is delivered inside the handler. */
#define NODEFER 1
#include "segv-reraise.c"
