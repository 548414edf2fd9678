/* A C program that crashes in a function reached through a tail call
 * (built with -O2 -g: middle() ends in a jump to leaf(), so no frame of
 * middle() is on the stack; gdb shows it from DWARF call-site data). */
#include <stdlib.h>

struct counter { int hits; };

__attribute__((noinline)) static int leaf(struct counter *c, int n)
{
	c->hits += n; /* c is NULL */
	return c->hits;
}

__attribute__((noinline)) int middle(struct counter *c, int n)
{
	return leaf(c, n * 2);
}

static inline int wrapped(struct counter *c, int n)
{
	return middle(c, n + 1) + 1;
}

__attribute__((noinline)) int top(struct counter *c, int n)
{
	int r = wrapped(c, n);
	return r * 3;
}

int main(int argc, char **argv)
{
	(void)argv;
	return top(argc > 5 ? malloc(sizeof(struct counter)) : NULL, argc);
}
