package validate

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// grafanaProvisioning is the Grafana provisioning of the compose stack
// (deploy/grafana/provisioning), decoded strictly.
type grafanaProvisioning struct {
	datasources struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string            `json:"name"`
			UID       string            `json:"uid"`
			Type      string            `json:"type"`
			Access    string            `json:"access"`
			URL       string            `json:"url"`
			IsDefault bool              `json:"isDefault"`
			Editable  bool              `json:"editable"`
			JSONData  map[string]string `json:"jsonData,omitempty"`
		} `json:"datasources"`
	}
	dashboards struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
}

var grafanaDir = filepath.Join(deployDir, "grafana")

func loadGrafana() (*grafanaProvisioning, error) {
	g := new(grafanaProvisioning)
	if err := loadYAMLStrict(filepath.Join(grafanaDir, "provisioning", "datasources", "prometheus.yml"), &g.datasources); err != nil {
		return nil, err
	}
	if err := loadYAMLStrict(filepath.Join(grafanaDir, "provisioning", "dashboards", "crowdgate.yml"), &g.dashboards); err != nil {
		return nil, err
	}
	return g, nil
}

// checkGrafana: Grafana runs beside Prometheus with the provisioning
// mounted where it reads it; its data source is the stack's Prometheus at
// the port it listens on; the dashboards provider reads the directory the
// dashboard JSON is mounted at.
func checkGrafana(s *stack) []error {
	g, ok := s.compose.Services["grafana"]
	if !ok {
		return []error{errors.New("no service named grafana")}
	}
	var errs []error
	if src, ok := g.mountedFrom("/etc/grafana/provisioning"); !ok || src != "./grafana/provisioning" {
		errs = append(errs, errors.New("service grafana must mount ./grafana/provisioning at /etc/grafana/provisioning"))
	}
	if d, ok := g.DependsOn["prometheus"]; !ok || d.Condition == "" {
		errs = append(errs, errors.New("service grafana must depend on prometheus"))
	}
	if len(s.grafana.datasources.Datasources) != 1 {
		return append(errs, fmt.Errorf("want one provisioned data source, got %d", len(s.grafana.datasources.Datasources)))
	}
	ds := s.grafana.datasources.Datasources[0]
	u, err := url.Parse(ds.URL)
	if err != nil || ds.Type != "prometheus" {
		return append(errs, fmt.Errorf("data source %q: type %s, url %q: want prometheus at a URL", ds.Name, ds.Type, ds.URL))
	}
	host, port, _ := net.SplitHostPort(u.Host)
	if p, ok := s.compose.Services[host]; !ok || !strings.HasPrefix(p.Image, "prom/prometheus") {
		errs = append(errs, fmt.Errorf("data source URL %s: host %q is not the stack's Prometheus service", ds.URL, host))
	}
	if port != "9090" {
		errs = append(errs, fmt.Errorf("data source URL %s: Prometheus listens on 9090 in its container, not %q", ds.URL, port))
	}
	if ds.JSONData["timeInterval"] != s.prometheus.Global.ScrapeInterval {
		errs = append(errs, fmt.Errorf("data source timeInterval %q, want Prometheus's scrape_interval %q ($__rate_interval is built on it)",
			ds.JSONData["timeInterval"], s.prometheus.Global.ScrapeInterval))
	}
	if len(s.grafana.dashboards.Providers) == 0 {
		return append(errs, errors.New("no dashboards provider"))
	}
	for _, pr := range s.grafana.dashboards.Providers {
		src, ok := g.mountedFrom(pr.Options.Path)
		if !ok {
			errs = append(errs, fmt.Errorf("dashboards provider %s reads %s, which service grafana does not mount", pr.Name, pr.Options.Path))
			continue
		}
		if _, err := os.Stat(filepath.Join(deployDir, src, filepath.Base(dashboardFile))); err != nil {
			errs = append(errs, fmt.Errorf("dashboards provider %s: %s holds no %s: %v", pr.Name, src, filepath.Base(dashboardFile), err))
		}
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		dir, file := filepath.Split(home)
		if src, ok := g.mountedFrom(strings.TrimSuffix(dir, "/")); !ok {
			errs = append(errs, fmt.Errorf("home dashboard %s is not in a mounted directory", home))
		} else if _, err := os.Stat(filepath.Join(deployDir, src, file)); err != nil {
			errs = append(errs, fmt.Errorf("home dashboard %s: %v", home, err))
		}
	}
	return errs
}
