/* A crash handler like glibc's libSegFault, Apache's sig_coredump or
 * Python's faulthandler: it logs the fatal signal, puts back the default
 * action and raises the signal again so that a core is written. The core's
 * NT_SIGINFO then records the second signal (SI_USER, sent by the process
 * itself); the real fault, a NULL write in store_result, is in the signal
 * frame the kernel pushed for the handler.
 *
 * Built as segv-reraise, the handler runs with the signal blocked (the
 * default): kill() leaves it pending until the handler returns, and the
 * core is dumped with the registers of the fault restored. Built as
 * segv-reraise-nodefer (SA_NODEFER, like Python's faulthandler), kill()
 * delivers it at once and the core is dumped inside the handler. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#ifndef NODEFER
#define NODEFER 0
#endif

static void crash_handler(int sig)
{
	static const char msg[] = "crash handler: fatal signal, re-raising it for a core dump\n";
	struct sigaction dfl;

	if (write(2, msg, sizeof msg - 1) < 0) {
		/* nothing to do */
	}
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	kill(getpid(), sig);
}

__attribute__((noinline)) static void store_result(int *out, int v)
{
	*out = v * 2;
}

__attribute__((noinline)) static void compute(int *volatile *slot)
{
	store_result(*slot, 21);
}

int main(void)
{
	struct sigaction sa;
	int *volatile result = NULL;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = crash_handler;
	sa.sa_flags = NODEFER ? SA_NODEFER : 0;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	compute(&result);
	return 0;
}
