// Package livetest is a fake Windows guest registry for tests of code that arms guests
// through the guest agent (package live): it answers reg.exe, del and the uptime query behind
// a qmptest agent.
package livetest

import (
	"fmt"
	"sort"
	"strings"

	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm/qmptest"
)

// Windows is a Windows guest's registry behind a qmptest agent: its Program answers
// reg.exe import FILE (reading the .reg the agent received into Files), reg.exe query KEY
// (printing as reg.exe does), cmd.exe /c del /f /q FILE and the PowerShell uptime query. Change
// its fields only under the agent's lock (qmptest.Server.Update).
type Windows struct {
	keys  map[string]map[string]value // lower-case "HKLM\…" → lower-case name → value
	names map[string]string           // lower-case key → key as written
	// Uptime is what the uptime query prints (seconds).
	Uptime string
	// FailImport, when set, is reg import's stderr (exit 1).
	FailImport string
	// Drop is a value name reg import silently ignores.
	Drop string
}

type value struct{ Name, Type, Data string }

func NewWindows() *Windows {
	f := &Windows{keys: map[string]map[string]value{}, names: map[string]string{}, Uptime: "3600"}
	f.Set(`HKLM\SYSTEM\Select`, "Current", "REG_DWORD", "0x1")
	f.Set(`HKLM\SYSTEM\CurrentControlSet\Control\ProductOptions`, "ProductType", "REG_SZ", "ServerNT")
	for _, d := range []string{"i8042prt", "kbdhid"} {
		f.Set(`HKLM\SYSTEM\CurrentControlSet\Services\`+d, "Start", "REG_DWORD", "0x1")
	}
	f.Set(`HKLM\SYSTEM\CurrentControlSet\Control\CrashControl`, "CrashDumpEnabled", "REG_DWORD", "0x0")
	f.Set(`HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management`, "PagingFiles", "REG_MULTI_SZ", `?:\pagefile.sys`)
	return f
}

// Set sets a value: key as "HKLM\\…", typ "REG_DWORD" (data "0x1"), "REG_SZ", …
func (f *Windows) Set(key, name, typ, data string) {
	v := value{name, typ, data}
	k := strings.ToLower(key)
	if f.keys[k] == nil {
		f.keys[k] = map[string]value{}
		f.names[k] = key
	}
	f.keys[k][strings.ToLower(v.Name)] = v
}

// Program is s's Program: s.Update(func(s *qmptest.Server) { s.Program = w.Program(s) }).
func (f *Windows) Program(s *qmptest.Server) func(string, []string) (int, string, string) {
	return func(path string, args []string) (int, string, string) {
		notFound := "ERROR: The system was unable to find the specified registry key or value.\r\n"
		switch {
		case path == "reg.exe" && len(args) == 2 && args[0] == "import":
			if f.FailImport != "" {
				return 1, "", f.FailImport
			}
			keys, err := registry.ParseReg(s.Files[args[1]])
			if err != nil {
				return 1, "", "ERROR: Error accessing the registry.\r\n"
			}
			for _, k := range keys {
				key := strings.Replace(k.Path, "HKEY_LOCAL_MACHINE", "HKLM", 1)
				if f.keys[strings.ToLower(key)] == nil {
					f.keys[strings.ToLower(key)], f.names[strings.ToLower(key)] = map[string]value{}, key
				}
				for _, v := range k.Values {
					switch {
					case v.Name == f.Drop:
					case v.Delete:
						delete(f.keys[strings.ToLower(key)], strings.ToLower(v.Name))
					case v.DWORD != nil:
						f.Set(key, v.Name, v.Type, fmt.Sprintf("0x%x", *v.DWORD))
					default:
						f.Set(key, v.Name, v.Type, *v.String)
					}
				}
			}
			return 0, "The operation completed successfully.\r\n", ""
		case path == "reg.exe" && len(args) == 2 && args[0] == "query":
			vals, ok := f.keys[strings.ToLower(args[1])]
			if !ok {
				return 1, "", notFound
			}
			var b strings.Builder
			b.WriteString("\r\n" + strings.Replace(f.names[strings.ToLower(args[1])], "HKLM", "HKEY_LOCAL_MACHINE", 1) + "\r\n")
			var names []string
			for n := range vals {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				v := vals[n]
				fmt.Fprintf(&b, "    %s    %s    %s\r\n", v.Name, v.Type, v.Data)
			}
			return 0, b.String() + "\r\n", ""
		case path == "cmd.exe" && len(args) == 5 && args[1] == "del":
			delete(s.Files, args[4])
			return 0, "", ""
		case path == "powershell.exe":
			return 0, f.Uptime + "\r\n", ""
		}
		return 1, "", "'" + path + "' is not recognized as an internal or external command\r\n"
	}
}
