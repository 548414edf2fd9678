/* A double free: glibc detects it and aborts through malloc_printerr. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
__attribute__((noinline)) void release(char *p) { free(p); }
int main(void) {
	char *p = malloc(64);
	strcpy(p, "x");
	release(p);
	release(p);
	puts(p);
	return 0;
}
