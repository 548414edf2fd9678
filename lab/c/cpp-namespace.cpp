// A crash inside a method of a class in a namespace (demangling).
#include <cstdio>
#include <string>
#include <vector>

namespace shop {
namespace billing {

class Invoice {
public:
	explicit Invoice(std::vector<int> *lines) : lines_(lines) {}
	int total(int discount) const
	{
		int sum = 0;
		for (int v : *lines_) // lines_ is NULL
			sum += v;
		return sum - discount;
	}

private:
	std::vector<int> *lines_;
};

} // namespace billing
} // namespace shop

int main()
{
	shop::billing::Invoice inv(nullptr);
	std::printf("%d\n", inv.total(5));
	return 0;
}
