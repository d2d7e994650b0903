package main

// `realkube openapi-v2-proto`: the OpenAPI v2 document as JSON on stdin,
// the same document in the protobuf form kube-apiserver serves (and kubectl
// asks for) on stdout. kubesim's recorder filters the JSON to the groups
// kubesim serves, then needs the protobuf of exactly that document.

import (
	"io"
	"os"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

func openAPIV2Proto() error {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	doc, err := openapiv2.ParseDocument(in)
	if err != nil {
		return err
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
