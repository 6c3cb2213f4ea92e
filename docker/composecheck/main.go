// composecheck loads a compose file the way Docker Compose does (compose-go: schema
// validation, interpolation, normalisation) and prints the first problem, so the project's
// tests can check docker-compose.yml on a machine without Docker.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck docker-compose.yml")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{os.Args[1]}, cli.WithOsEnv, cli.WithDotEnv, cli.WithName("streamtap"),
	)
	if err == nil {
		var project interface{ ServiceNames() []string }
		project, err = options.LoadProject(context.Background())
		if err == nil {
			fmt.Println(len(project.ServiceNames()), "services")
			return
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
