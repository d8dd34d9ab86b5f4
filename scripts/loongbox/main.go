// Command box is the sh, uname and cat of the test world's linux/loong64 base image.
//
// Debian's main archive has no loong64 busybox, so scripts/loongbox builds this one program
// with Debian's Go toolchain (GOARCH=loong64) and links it as /bin/sh, /bin/uname and /bin/cat.
// The shell is mvdan.cc/sh's POSIX interpreter, from Debian's golang-mvdan-sh-dev: enough for
// `RUN uname -m > /built-for` and `sh -c "echo Hello from $(cat /built-for)"`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if name == "box" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "sh":
		os.Exit(sh(args))
	case "uname":
		os.Exit(uname(args))
	case "cat":
		os.Exit(cat(args))
	}
	fmt.Fprintf(os.Stderr, "box: %s: not one of sh, uname, cat\n", name)
	os.Exit(127)
}

// sh runs `sh -c SCRIPT [NAME ARGS...]`, `sh FILE [ARGS...]`, or the script on stdin.
func sh(args []string) int {
	source, name, params := io.Reader(os.Stdin), "sh", []string{}
	switch {
	case len(args) > 1 && args[0] == "-c":
		source = strings.NewReader(args[1])
		if len(args) > 2 {
			name, params = args[2], args[3:]
		}
	case len(args) > 0:
		file, err := os.Open(args[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "sh: %v\n", err)
			return 127
		}
		defer file.Close()
		source, name, params = file, args[0], args[1:]
	}
	program, err := syntax.NewParser().Parse(source, name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sh: %v\n", err)
		return 2
	}
	runner, err := interp.New(interp.StdIO(os.Stdin, os.Stdout, os.Stderr),
		interp.Params(append([]string{"--"}, params...)...))
	if err != nil {
		fmt.Fprintf(os.Stderr, "sh: %v\n", err)
		return 2
	}
	if err := runner.Run(context.Background(), program); err != nil {
		if status, ok := interp.IsExitStatus(err); ok {
			return int(status)
		}
		fmt.Fprintf(os.Stderr, "sh: %v\n", err)
		return 1
	}
	return 0
}

// uname prints the kernel's fields as coreutils does for -s (the default), -n, -r, -m, -a.
func uname(args []string) int {
	var names unix.Utsname
	if err := unix.Uname(&names); err != nil {
		fmt.Fprintf(os.Stderr, "uname: %v\n", err)
		return 1
	}
	field := func(raw [65]byte) string { return strings.TrimRight(string(raw[:]), "\x00") }
	all := map[string]string{"-s": field(names.Sysname), "-n": field(names.Nodename),
		"-r": field(names.Release), "-v": field(names.Version), "-m": field(names.Machine)}
	if len(args) == 0 {
		args = []string{"-s"}
	}
	var out []string
	for _, arg := range args {
		if arg == "-a" {
			out = append(out, all["-s"], all["-n"], all["-r"], all["-v"], all["-m"])
			continue
		}
		value, ok := all[arg]
		if !ok {
			fmt.Fprintf(os.Stderr, "uname: invalid option %q\n", arg)
			return 1
		}
		out = append(out, value)
	}
	fmt.Println(strings.Join(out, " "))
	return 0
}

// cat copies each file (or stdin, for none or "-") to stdout.
func cat(args []string) int {
	if len(args) == 0 {
		args = []string{"-"}
	}
	status := 0
	for _, arg := range args {
		var source io.Reader = os.Stdin
		if arg != "-" {
			file, err := os.Open(arg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "cat: %v\n", err)
				status = 1
				continue
			}
			defer file.Close()
			source = file
		}
		if _, err := io.Copy(os.Stdout, source); err != nil {
			fmt.Fprintf(os.Stderr, "cat: %v\n", err)
			status = 1
		}
	}
	return status
}
