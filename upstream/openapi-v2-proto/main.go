// Command openapi-v2-proto encodes an OpenAPI v2 (Swagger) JSON document read from stdin as
// kube-apiserver serves it to clients that ask for protobuf: parsed into gnostic's
// openapi_v2.Document and marshalled. svcnet's tests compare its own encoding with this one.
package main

import (
	"fmt"
	"io"
	"os"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading stdin:", err)
		os.Exit(1)
	}
	doc, err := openapi_v2.ParseDocument(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parsing the document:", err)
		os.Exit(1)
	}
	out, err := proto.Marshal(doc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "marshalling:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
