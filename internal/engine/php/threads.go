package php

import (
	"fmt"

	"github.com/coroner-dev/coroner/crash"
)

// phpThread is a thread and where its PHP globals are: for NTS builds the
// one executor_globals and sapi_globals; for ZTS builds the thread's TSRM
// block plus executor_globals_offset (sapi_globals_offset).
type phpThread struct {
	tid     int
	crashed bool
	regs    crash.Registers
	eg, sg  uint64
	// running is true when EG(current_execute_data) is set: the thread
	// was executing PHP code.
	running bool
}

// maxPHPThreads bounds the threads whose PHP state is read.
const maxPHPThreads = 256

// phpThreads returns the thread whose PHP state the report shows (the
// crashed one when it has PHP globals, else the first thread running PHP)
// and the other threads that were running PHP (ZTS builds only).
func phpThreads(m *mem, g *globals, d *derivation, threads []Thread) (primary phpThread, others []phpThread, tsrm string, err error) {
	var crashed *Thread
	for i := range threads {
		if threads[i].Crashed {
			crashed = &threads[i]
		}
	}
	if crashed == nil {
		crashed = &threads[0]
	}
	if !g.zts {
		return phpThread{tid: crashed.TID, crashed: true, regs: crashed.Registers, eg: g.eg, sg: g.sg}, nil, "", nil
	}
	if d == nil || d.tsrm == nil {
		why := "the PHP binary's code was not read"
		if d != nil {
			why = "no exported function shows how its code reaches the thread's TSRM block"
			if c, ok := d.conflicts["tsrm"]; ok {
				why = c
			}
		}
		return phpThread{}, nil, "", fmt.Errorf("this PHP is a thread-safe (ZTS) build whose globals live in each thread's TSRM block, not located: %s; PHP stack, request and INI not read", why)
	}
	egOff, err1 := m.u64(g.egOffset)
	sgOff, err2 := m.u64(g.sgOffset)
	if err1 != nil || g.egOffset == 0 {
		return phpThread{}, nil, "", fmt.Errorf("ZTS: executor_globals_offset not read: %v", err1)
	}
	tpOff := d.tsrm.tpOffset
	if d.tsrm.gotSlot != 0 {
		v, err := m.u64(d.tsrm.gotSlot + g.module.Bias)
		if err != nil {
			return phpThread{}, nil, "", fmt.Errorf("ZTS: the TLS offset of the TSRM block (GOT slot %#x): %v", d.tsrm.gotSlot, err)
		}
		tpOff += int64(v)
	}
	var all []phpThread
	desc := fmt.Sprintf("each thread's TSRM block is at %s; EG = block + executor_globals_offset (%#x)", d.tsrm.describe(), egOff)
	for i, t := range threads {
		if i >= maxPHPThreads {
			break
		}
		fs, ok := t.Registers.Get(crash.RegFSBase)
		if !ok || fs == 0 {
			continue
		}
		block, err := m.ptr(uint64(int64(fs)+tpOff), 8)
		if err != nil || block == 0 {
			continue
		}
		pt := phpThread{tid: t.TID, crashed: t.Crashed, regs: t.Registers, eg: block + egOff}
		if err2 == nil && g.sgOffset != 0 {
			pt.sg = block + sgOff
		}
		if cur, err := m.ptr(pt.eg+m.l.EGCurrentExecuteData, 8); err == nil && cur != 0 {
			pt.running = true
		}
		all = append(all, pt)
	}
	if len(all) == 0 {
		return phpThread{}, nil, "", fmt.Errorf("ZTS: no thread has a TSRM block (%s)", d.tsrm.describe())
	}
	p := -1
	for i, t := range all {
		if t.crashed {
			p = i
		}
	}
	if p < 0 || !all[p].running {
		for i, t := range all {
			if t.running {
				p = i
				break
			}
		}
	}
	if p < 0 {
		p = 0
	}
	for i, t := range all {
		if i != p && t.running {
			others = append(others, t)
		}
	}
	return all[p], others, desc, nil
}

// read reads the PHP stack and request of one more thread.
func (t phpThread) read(m *mem, g *globals, sapi string, showSecrets, stack bool) crash.PHPThread {
	out := crash.PHPThread{TID: t.tid, Frames: []crash.PHPFrame{}, Cycles: []crash.Cycle{}}
	tg := *g
	tg.eg, tg.sg = t.eg, t.sg
	if stack {
		w := newWalker(m, m.l)
		regs := t.regs
		out.Frames = w.walk(tg.eg, &regs)
		if out.Frames == nil {
			out.Frames = []crash.PHPFrame{}
		}
		out.Cycles = foldFrames(out.Frames)
		out.Warnings = append(out.Warnings, w.warns...)
	}
	req, warns, _ := readRequest(m, &tg, sapi, showSecrets)
	out.Request = req
	out.Warnings = append(out.Warnings, warns...)
	return out
}
