package coredumps

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseCrash(f *testing.F) {
	f.Add([]byte("ProblemType: Crash\nDate: Thu Nov 26 19:27:44 2026\nExecutablePath: /usr/sbin/php-fpm8.2\nProcStatus:\n Name:\tphp-fpm8.2\n Pid:\t14502\nSignal: 11\nCoreDump: base64\n H4sICAAAAAAC/0NvcmVEdW1wAA==\n 7N0JfFTV2cfxO0mAsGZQUFDUiLhLCKugohMQmChoZFFatUkIAaIhiVkQ3AirxohGse62sWLFrY07LtUBrOJWI1pLXWrqUsE16iuFWsn73LnPSWYOMyEo2O339zM+c849d/nee+fOZDIT5o8ZPzbB53NMkpzjnZaW4wSc7RNwhju9m8d7WdUuxkDJrKHRbTPeZ+6bFaSP63bLlIiB/tjVnS+8qiyzMdZ8ceZvXp+ZL+t7zpfT9u1sHx6v/SU7OV+JWd+ZJ0TPl2BVa75K7U+9eti2SyLmC/ijq+0L7aHruy16PrN9OduvL3wc6nW+0O3R85nk9Iy9PjNf6mOx50tv1/p8WU9ZPqka+8W/p9dRY82XalV7vnSdr86ar96q9nxOD+0PtXl9Y\n"))
	f.Add([]byte("Key:\n \n  \nOther: base64\n\n !!!!\n"))
	f.Add([]byte(" leading continuation\nK: v\r\nK2:v2"))
	f.Add([]byte("CoreDump: base64\n KLUv/QBYAQAA\n"))
	rc := getRealCore(f)
	dir := f.TempDir()
	crash := filepath.Join(dir, "seed.crash")
	small := filepath.Join(dir, "small")
	raw, err := os.ReadFile(rc.Core)
	if err != nil {
		f.Fatal(err)
	}
	os.WriteFile(small, raw[:4096], 0o600)
	writeApportCrash(f, crash, small, "", map[string]string{"ExecutablePath": "/x", "Signal": "11", "ProcStatus": "Pid:\t1\nUid:\t0"})
	b, _ := os.ReadFile(crash)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var sink bytes.Buffer
		rep, err := ParseCrash(bytes.NewReader(data), func(key string) io.Writer { return &sink })
		if rep == nil {
			t.Fatalf("nil report (err %v)", err)
		}
		if sink.Len() > len(data) {
			t.Fatalf("decoded %d bytes from %d bytes of input", sink.Len(), len(data))
		}
		e := &Entry{}
		applyCrashFields(e, rep)
	})
}

func FuzzReadCoreInfo(f *testing.F) {
	rc := getRealCore(f)
	raw, err := os.ReadFile(rc.Core)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw[:min(len(raw), 16384)])
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ReadCoreInfo(bytes.NewReader(data))
		if info == nil && err == nil {
			t.Fatal("nil info without an error")
		}
		// The same through the forward-only reader used for compressed cores.
		sinfo, serr := ReadCoreInfo(&streamReaderAt{r: bytes.NewReader(data)})
		if (sinfo == nil) != (info == nil) || (sinfo != nil && (sinfo.PID != info.PID || sinfo.Exe != info.Exe || sinfo.ExeBuildID != info.ExeBuildID)) {
			t.Fatalf("stream reader disagrees: %+v %v vs %+v %v", sinfo, serr, info, err)
		}
	})
}

func FuzzReadExport(f *testing.F) {
	f.Add([]byte("__CURSOR=s=1\nMESSAGE_ID=fc2e22bc6ee647b6b90729ab34a250b1\nCOREDUMP_PID=1\n\n"))
	f.Add(append(binField("COREDUMP", []byte("\x7fELF\n\x00")), "\nA=1\n"...))
	f.Add([]byte("COREDUMP\n\xff\xff\xff\xff\xff\xff\xff\x7f"))
	f.Add([]byte("COREDUMP\n\x00\x00\x00\x40\x00\x00\x00\x00\x7fELF"))
	f.Add([]byte("\n\n\nA=\n=\nlower\n"))
	rc := getRealCore(f)
	raw, err := os.ReadFile(rc.Core)
	if err != nil {
		f.Fatal(err)
	}
	var rec bytes.Buffer
	rec.WriteString("__CURSOR=s=a;i=1\n__REALTIME_TIMESTAMP=1\nCOREDUMP_PID=1\n")
	rec.Write(binField("COREDUMP", raw[:min(len(raw), 8192)]))
	rec.Write(binField("MESSAGE", []byte("two\nlines")))
	rec.WriteString("\n")
	f.Add(rec.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var read int64
		_ = ReadExport(bytes.NewReader(data), func(ef *ExportField) error {
			if ef.Size < 0 || ef.Value != nil && int64(len(ef.Value)) > ef.Size {
				t.Fatalf("field %q: size %d, value of %d bytes", ef.Name, ef.Size, len(ef.Value))
			}
			if !ef.Binary {
				return nil
			}
			if ef.Name == "MESSAGE" { // read in part: the rest is skipped
				n, _ := io.CopyN(io.Discard, ef.Data, 3)
				read += n
				return nil
			}
			n, _ := io.Copy(io.Discard, ef.Data)
			read += n
			if ef.Name == "STOP" {
				return errStopExport
			}
			return nil
		})
		if read > int64(len(data)) {
			t.Fatalf("read %d bytes of values from %d bytes of input", read, len(data))
		}
	})
}
