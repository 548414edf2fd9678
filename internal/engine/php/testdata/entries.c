/* A miniature PHP extension for entries_test.go: a function table and a
 * method table registered under a class name, like gen_stub.php output. */
typedef struct {
	const char *fname;
	void (*handler)(void *execute_data, void *return_value);
	const void *arg_info;
	unsigned num_args;
	unsigned flags;
} zend_function_entry;

static const long arginfo[4] = {1, 0, 0, 0};
static void zif_mini_hello(void *ex, void *rv) { *(long *)rv = 1; }
static void zif_mini_world(void *ex, void *rv) { *(long *)rv = 2; }
static void zim_Mini_Thing_run(void *ex, void *rv) { *(long *)rv = 3; }

static const zend_function_entry ext_functions[] = {
	{"mini_hello", zif_mini_hello, arginfo, 1, 0},
	{"mini_world", zif_mini_world, arginfo, 0, 0},
	{0, 0, 0, 0, 0},
};
static const zend_function_entry class_Mini_Thing_methods[] = {
	{"run", zim_Mini_Thing_run, arginfo, 0, 1 /* ZEND_ACC_PUBLIC */},
	{0, 0, 0, 0, 0},
};

extern void *zend_string_init_interned(const char *s, unsigned long len, int persistent);
struct ce { void *name; const zend_function_entry *functions; };
void register_class_Mini_Thing(struct ce *ce)
{
	ce->name = zend_string_init_interned("Mini\\Thing", 10, 1);
	ce->functions = class_Mini_Thing_methods;
}

struct module { const char *name; const zend_function_entry *functions; };
struct module mini_module_entry = {"mini", ext_functions};
