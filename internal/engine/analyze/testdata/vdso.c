/* A crash inside the vDSO: clock_gettime is answered by the kernel's vDSO
 * without a system call, and the vDSO writes the time through the bad
 * pointer it is given. No file on disk holds the code that faulted. */
#include <time.h>

int main(void) {
	return clock_gettime(CLOCK_MONOTONIC, (struct timespec *)8);
}
