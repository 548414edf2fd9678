/* The process sends itself SIGSEGV: no instruction faults. */
#include <signal.h>
#include <unistd.h>
__attribute__((noinline)) void bye(void) { kill(getpid(), SIGSEGV); }
int main(void) { bye(); return 0; }
