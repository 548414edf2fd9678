package analyze

func (a *analysis) nameInternals() {}
func (a *analysis) runPHP()        { a.labelJIT() }
func (a *analysis) explainFault()  {}
