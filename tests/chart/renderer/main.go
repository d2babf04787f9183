// Command renderer renders a Helm v3 chart the way `helm template` does, for tests on
// machines without Helm: Go text/template + sprig, Helm's extra functions (include, tpl,
// required, toYaml, fromYaml, toJson, fromJson, fail via sprig), .Values (chart defaults
// deep-merged with -f files in order), .Release, .Chart, .Capabilities, .Template.
// Not covered: subcharts/dependencies, --set, lookup (always empty), .Files, schema checking
// (render.sh does that with python3-jsonschema), hooks ordering (all objects are printed).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

type VersionSet []string

func (v VersionSet) Has(s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", a...)
	os.Exit(1)
}

func readYAML(path string) map[string]interface{} {
	b, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		die("%s: %v", path, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m
}

// merge overlays src onto dst like Helm: maps merge deeply, anything else replaces, and an
// explicit null removes the key.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func toYAML(v interface{}) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

func main() {
	var files multi
	chartDir := flag.String("chart", "charts/hookguard", "chart directory")
	name := flag.String("name", "hookguard", "release name")
	namespace := flag.String("namespace", "hookguard", "release namespace")
	kube := flag.String("kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	var apis multi
	flag.Var(&files, "f", "values file (repeatable, later wins)")
	flag.Var(&apis, "api-versions", "extra .Capabilities.APIVersions entry (repeatable)")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	printValues := flag.Bool("values", false, "print the merged values as JSON and exit")
	flag.Parse()

	chart := readYAML(filepath.Join(*chartDir, "Chart.yaml"))
	values := readYAML(filepath.Join(*chartDir, "values.yaml"))
	for _, f := range files {
		values = merge(values, readYAML(f))
	}
	if *printValues {
		b, err := json.Marshal(values)
		if err != nil {
			die("%v", err)
		}
		fmt.Println(string(b))
		return
	}
	kv := strings.TrimPrefix(*kube, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		die("-kube-version %q is not vMAJOR.MINOR.PATCH", *kube)
	}
	str := func(k string) string { s, _ := chart[k].(string); return s }
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": *name, "Namespace": *namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": str("name"), "Version": str("version"), "AppVersion": str("appVersion"),
			"Description": str("description"),
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{
				"Version": "v" + kv, "GitVersion": "v" + kv, "Major": parts[0], "Minor": parts[1],
			},
			"APIVersions": append(VersionSet{"v1", "apps/v1", "batch/v1", "policy/v1",
				"rbac.authorization.k8s.io/v1", "admissionregistration.k8s.io/v1"}, apis...),
		},
	}

	root := template.New("root")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, fmt.Errorf(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, fmt.Errorf(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(...interface{}) map[string]interface{} { return map[string]interface{}{} }
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, n, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs).Option("missingkey=zero")

	var names []string
	tdir := filepath.Join(*chartDir, "templates")
	err := filepath.Walk(tdir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(*chartDir, p)
		n := filepath.Join(str("name"), rel)
		if _, err := root.New(n).Parse(string(b)); err != nil {
			return err
		}
		names = append(names, n)
		return nil
	})
	if err != nil {
		die("%v", err)
	}
	sort.Strings(names)
	for _, n := range names {
		base := filepath.Base(n)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != *notes {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": n, "BasePath": filepath.Join(str("name"), "templates")}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, n, data); err != nil {
			die("%v", err)
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if *notes {
			fmt.Print(out)
			continue
		}
		if strings.TrimSpace(out) == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", n, strings.TrimSpace(out))
	}
}
