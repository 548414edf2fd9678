/* An assertion failure in a library-like function: SIGABRT via __assert_fail. */
#include <assert.h>
#include <stdio.h>
__attribute__((noinline)) int queue_destroy(int refcnt) {
	assert(refcnt > 0);
	return refcnt - 1;
}
int main(int argc, char **argv) {
	(void)argv;
	printf("%d\n", queue_destroy(argc - 1));
	return 0;
}
