/* Integer division by zero: SIGFPE, a crash no rule knows. */
#include <stdio.h>
__attribute__((noinline)) int ratio(int a, int b) { return a / b; }
int main(int argc, char **argv) {
	(void)argv;
	printf("%d\n", ratio(10, argc - 1));
	return 0;
}
