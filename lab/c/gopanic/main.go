// Command gopanic is one of the crash lab's programs: a Go program that
// dereferences a nil pointer and, with GOTRACEBACK=crash, dies of SIGABRT
// with a core. Its stack goes through the Go runtime's signal handler and
// its own signal restorer (no CFI 'S' augmentation), which unwinders must
// recognise by its code.
package main

import (
	"fmt"
	"os"
)

type order struct {
	lines []int
}

func total(o *order) int {
	sum := 0
	for _, v := range o.lines {
		sum += v
	}
	return sum
}

func find(orders map[string]*order, id string) *order {
	return orders[id]
}

func main() {
	orders := map[string]*order{"a": {lines: []int{1, 2}}}
	id := "missing"
	if len(os.Args) > 1 {
		id = os.Args[1]
	}
	fmt.Println(total(find(orders, id)))
}
