// A C++ service that crashes on the same host as PHP-FPM: a lookup of a
// missing item dereferences a null pointer (coroner must not count it as a
// PHP worker death).
#include <cstdio>
#include <map>
#include <string>

namespace inventory {
struct Item {
    std::string name;
    int stock;
};

class Store {
public:
    Item *find(const std::string &sku) {
        auto it = items_.find(sku);
        return it == items_.end() ? nullptr : &it->second;
    }
    int stock(const std::string &sku) { return find(sku)->stock; }

private:
    std::map<std::string, Item> items_{{"A-1", {"pen", 3}}};
};
} // namespace inventory

int main() {
    inventory::Store s;
    std::printf("%d\n", s.stock("B-2"));
    return 0;
}
