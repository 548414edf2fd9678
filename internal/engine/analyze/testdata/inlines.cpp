// A C++ program whose crash is deep in inlined code (built with -O2 -g by
// the tests): a lambda run by std::thread, templates, namespaces, an
// anonymous namespace and class members, inlined into one another.
#include <cstdio>
#include <thread>
#include <vector>

namespace shop {
namespace {
struct Ledger {
	int *total;
	int n;
	inline int sum() const {
		int s = 0;
		for (int i = 0; i < n; i++)
			s += i * i;
		return s;
	}
};
} // namespace

template <typename T> struct Book {
	T ledger;
	inline void close() { *ledger.total = ledger.sum(); }
};

inline void settle(Book<Ledger> &b) { b.close(); }
} // namespace shop

int main(int argc, char **argv) {
	std::vector<shop::Book<shop::Ledger>> books(2);
	books[0].ledger.n = argc + 9;
	books[0].ledger.total = nullptr; // never allocated
	std::thread t([&books]() { shop::settle(books[0]); });
	t.join();
	std::printf("%d\n", *books[0].ledger.total);
	return 0;
}
