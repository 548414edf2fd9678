/* A write through a NULL struct pointer, built with -O0 -g. */
#include <stdio.h>

struct session {
	long id;
	char name[32];
	int hits;
};

static void record_hit(struct session *s)
{
	s->hits++;
}

static struct session *find_session(long id)
{
	(void)id;
	return NULL;
}

int main(void)
{
	record_hit(find_session(42));
	puts("unreachable");
	return 0;
}
