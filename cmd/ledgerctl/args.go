package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// usageError is a mistake in the command line: exit 2 with the command's
// usage on stderr.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg + "\n\n" + e.usage }

// errHelp is -h or --help: the usage goes to stdout, exit 0, and the
// command does nothing else.
type helpRequest struct{ usage string }

func (e *helpRequest) Error() string { return "help requested" }

// parse parses args for a subcommand strictly: flags anywhere among the
// positional arguments, unknown flags and a wrong number of positional
// arguments are usage errors, and -h/--help anywhere asks for help only.
// positional is the number of arguments the command takes exactly.
func parse(fs *flag.FlagSet, usage string, args []string, positional int) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			return nil, &helpRequest{usage}
		}
	}
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{usage}
			}
			return nil, &usageError{strings.TrimSpace(err.Error()), usage}
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	switch {
	case len(pos) > positional:
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", pos[positional]), usage}
	case len(pos) < positional:
		return nil, &usageError{"missing argument", usage}
	}
	return pos, nil
}
