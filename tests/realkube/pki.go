package main

// The state directory: a CA, the serving certificate, the service-account
// signing key, static tokens and kubeconfigs. Made once and reused, so a
// restarted control plane keeps trusting the tokens it issued.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Users with a static token. The components authenticate as the users the
// bootstrap RBAC policy already binds; admin is in system:masters.
var tokenUsers = []struct{ file, user, groups string }{
	{"admin", "admin", "system:masters"},
	{"controller-manager", "system:kube-controller-manager", ""},
	{"scheduler", "system:kube-scheduler", ""},
}

type stateDir string

func (d stateDir) path(name string) string { return filepath.Join(string(d), name) }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ensure creates whatever of the state is missing.
func (d stateDir) ensure() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return err
	}
	if !exists(d.path("ca.crt")) {
		if err := d.writeCA(); err != nil {
			return err
		}
	}
	if !exists(d.path("serving.crt")) {
		if err := d.writeServing(); err != nil {
			return err
		}
	}
	if !exists(d.path("sa.key")) {
		if err := d.writeServiceAccountKey(); err != nil {
			return err
		}
	}
	if !exists(d.path("tokens.csv")) {
		if err := d.writeTokens(); err != nil {
			return err
		}
	}
	return nil
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	return key, der, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// writeCA: Go marks basicConstraints and keyUsage critical and adds a subject
// key identifier, which strict verifiers (Python 3.13) insist on.
func (d stateDir) writeCA() error {
	key, der, err := newKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "realkube-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := writePEM(d.path("ca.key"), "PRIVATE KEY", der); err != nil {
		return err
	}
	return writePEM(d.path("ca.crt"), "CERTIFICATE", cert)
}

func (d stateDir) loadCA() (*x509.Certificate, any, error) {
	certPEM, err := os.ReadFile(d.path("ca.crt"))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(d.path("ca.key"))
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("ca.crt or ca.key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	return cert, key, err
}

// writeServing: the apiserver's certificate, valid for loopback and for the
// names and service IP that in-cluster clients use.
func (d stateDir) writeServing() error {
	ca, caKey, err := d.loadCA()
	if err != nil {
		return err
	}
	key, der, err := newKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceIP)},
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writePEM(d.path("serving.key"), "PRIVATE KEY", der); err != nil {
		return err
	}
	return writePEM(d.path("serving.crt"), "CERTIFICATE", cert)
}

// writeServiceAccountKey: RSA, the algorithm every token verifier accepts.
func (d stateDir) writeServiceAccountKey() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(d.path("sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)); err != nil {
		return err
	}
	return writePEM(d.path("sa.pub"), "PUBLIC KEY", pub)
}

func (d stateDir) writeTokens() error {
	csv := ""
	for _, u := range tokenUsers {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		tok := hex.EncodeToString(b)
		if err := os.WriteFile(d.path(u.file+".token"), []byte(tok), 0o600); err != nil {
			return err
		}
		line := fmt.Sprintf("%s,%s,%s", tok, u.user, u.user)
		if u.groups != "" {
			line += fmt.Sprintf(",%q", u.groups)
		}
		csv += line + "\n"
	}
	return os.WriteFile(d.path("tokens.csv"), []byte(csv), 0o600)
}

// writeKubeconfig writes DIR/<name>.kubeconfig for the user with that token.
func (d stateDir) writeKubeconfig(name string, port int) (string, error) {
	ca, err := os.ReadFile(d.path("ca.crt"))
	if err != nil {
		return "", err
	}
	tok, err := os.ReadFile(d.path(name + ".token"))
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: realkube
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: realkube
  context: {cluster: realkube, user: %s}
current-context: realkube
`, port, base64.StdEncoding.EncodeToString(ca), name, tok, name)
	p := d.path(name + ".kubeconfig")
	return p, os.WriteFile(p, []byte(cfg), 0o600)
}
