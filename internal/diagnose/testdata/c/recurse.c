/* Unbounded recursion: the stack runs out (SIGSEGV on the guard page). */
#include <stdio.h>
__attribute__((noinline)) int walk(int n, volatile char *prev) {
	volatile char buf[200];
	buf[0] = (char)n;
	buf[199] = prev ? prev[0] : 0;
	return walk(n + 1, buf) + buf[5];
}
int main(void) { printf("%d\n", walk(0, 0)); return 0; }
