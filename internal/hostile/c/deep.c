#include <stdio.h>
__attribute__((noinline)) int down(int n) {
	volatile char pad[16];
	pad[n & 15] = (char)n;
	if (n == 0)
		*(volatile int *)0 = 1;
	return down(n - 1) + pad[n & 7];
}
int main(void) { return down(80000); }
