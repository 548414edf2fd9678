/* Unbounded recursion until the stack's guard page, built with -O0 -g. */
#include <stdio.h>
#include <string.h>

static int depth_first(const char *node, int depth)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%d", node, depth);
	return depth_first(path + (strlen(path) > 200 ? 100 : 0), depth + 1) + (int)path[0];
}

int main(void)
{
	return depth_first("root", 0);
}
