package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// sidecarArgsParse parses args (after "beacongrid sidecar") with the real
// command's flags.
func sidecarArgsParse(t *testing.T, where string, args []string) *sidecarFlags {
	t.Helper()
	cmd := newSidecarCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if rest := cmd.Flags().Args(); len(rest) != 0 {
		t.Fatalf("%s: stray arguments %q", where, rest)
	}
	f := &sidecarFlags{}
	f.cfg.SpoolDir, _ = cmd.Flags().GetString("spool")
	return f
}

// TestSystemdUnit checks that deploy/beacongrid-sidecar.service runs the
// sidecar with flags the command accepts and that the spool it reads is the
// one the unit lets it write.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/beacongrid-sidecar.service")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var exec, rw string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec = v
		}
		if v, ok := strings.CutPrefix(line, "ReadWritePaths="); ok {
			rw = v
		}
	}
	words := strings.Fields(exec)
	if len(words) < 2 || !strings.HasSuffix(words[0], "/beacongrid") || words[1] != "sidecar" {
		t.Fatalf("ExecStart = %q", exec)
	}
	f := sidecarArgsParse(t, "ExecStart", words[2:])
	if f.cfg.SpoolDir == "" || f.cfg.SpoolDir != rw {
		t.Errorf("--spool %q, ReadWritePaths %q: the sidecar must be able to commit and trim the spool", f.cfg.SpoolDir, rw)
	}
	if !strings.Contains(text, "BEACONGRID_ES_API_KEY_FILE=") || strings.Contains(exec, "KEY") {
		t.Error("the API key must come from a credential file, never the command line")
	}
}

// TestKubernetesExample checks deploy/kubernetes/beacongrid.yaml: valid
// YAML documents, a pod with Fluent Bit and the sidecar sharing the spool
// volume, the plugin's spool_dir equal to the sidecar's --spool, and
// sidecar flags the command accepts.
func TestKubernetesExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/beacongrid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}
	type container struct {
		Name         string   `yaml:"name"`
		Args         []string `yaml:"args"`
		VolumeMounts []mount  `yaml:"volumeMounts"`
	}
	var fluentConf string
	var containers []container
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []container `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if c, ok := doc.Data["fluent-bit.yaml"]; ok {
			fluentConf = c
		}
		if doc.Kind == "DaemonSet" {
			containers = doc.Spec.Template.Spec.Containers
		}
	}
	var fb struct {
		Plugins  []string `yaml:"plugins"`
		Pipeline struct {
			Outputs []map[string]string `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	if err := yaml.Unmarshal([]byte(fluentConf), &fb); err != nil {
		t.Fatalf("fluent-bit.yaml: %v", err)
	}
	spoolDir := ""
	for _, o := range fb.Pipeline.Outputs {
		if o["name"] == "beacongrid" {
			spoolDir = o["spool_dir"]
		}
	}
	if len(fb.Plugins) != 1 || !strings.HasSuffix(fb.Plugins[0], "out_beacongrid.so") || spoolDir == "" {
		t.Fatalf("fluent-bit.yaml: plugins %v, spool_dir %q", fb.Plugins, spoolDir)
	}
	spoolVolume := map[string]string{}
	var sidecarSpool string
	for _, c := range containers {
		for _, m := range c.VolumeMounts {
			if m.MountPath == spoolDir {
				spoolVolume[c.Name] = m.Name
			}
		}
		if c.Name == "sidecar" {
			if len(c.Args) == 0 || c.Args[0] != "sidecar" {
				t.Fatalf("sidecar args %q", c.Args)
			}
			sidecarSpool = sidecarArgsParse(t, "sidecar container", c.Args[1:]).cfg.SpoolDir
		}
	}
	if len(containers) != 2 || spoolVolume["fluent-bit"] == "" || spoolVolume["fluent-bit"] != spoolVolume["sidecar"] {
		t.Errorf("containers %d, spool volumes %v: both must mount the same spool volume at %s", len(containers), spoolVolume, spoolDir)
	}
	if sidecarSpool != spoolDir {
		t.Errorf("sidecar --spool %q, plugin spool_dir %q", sidecarSpool, spoolDir)
	}
}
