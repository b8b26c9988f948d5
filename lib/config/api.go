// Package config reads eib's layered INI configuration exactly as Python's
// configparser (strict, ExtendedInterpolation) and EIB do.
//
// PLACEHOLDER API: the config engine replaces the bodies; the exported
// names and signatures below are what the rest of eib codes against.
package config

import (
	"errors"
	"io"
)

// Config is an ordered set of sections of options, with origin tracking.
type Config struct{}

// New returns an empty Config.
func New() *Config { return &Config{} }

// Set sets section:option to a raw value (creating the section).
func (c *Config) Set(section, option, value string) {}

// Get returns the interpolated value of section:option.
func (c *Config) Get(section, option string) (string, error) {
	return "", errors.New("config: not implemented yet")
}

// Has reports whether section:option is set.
func (c *Config) Has(section, option string) bool { return false }

// Bool returns section:option as a boolean (configparser's getboolean:
// 1/yes/true/on, 0/no/false/off, case-insensitive).
func (c *Config) Bool(section, option string) (bool, error) {
	return false, errors.New("config: not implemented yet")
}

// Int returns section:option as an integer.
func (c *Config) Int(section, option string) (int64, error) {
	return 0, errors.New("config: not implemented yet")
}

// Words returns the interpolated value of section:option split on white
// space (for merged lists such as image:hooks).
func (c *Config) Words(section, option string) ([]string, error) {
	return nil, errors.New("config: not implemented yet")
}

// Env returns every option of the config, interpolated, as EIB_* variables
// (KEY=VALUE), in a stable order.
func (c *Config) Env() ([]string, error) {
	return nil, errors.New("config: not implemented yet")
}

// Write writes the config in configparser's write() format (raw values).
func (c *Config) Write(w io.Writer) error {
	return errors.New("config: not implemented yet")
}

// Loaded is the result of Load.
type Loaded struct {
	Public *Config // without private files
	Full   *Config // with private files
	// Secrets are the interpolated values that come from private files,
	// to be masked in logs.
	Secrets []string
}

// Options select the config files (CLI values) and set the [build] keys.
type Options struct {
	SrcDir              string
	LocalDir            string // "" = none
	SysConfDir          string // default /etc/eib
	Product             string
	Branch              string
	Arch                string
	Platform            string
	Personality         string
	DryRun              bool
	UseProductionOSTree bool
	BuildVersion        string // default: now, UTC, %y%m%d-%H%M%S
}

// Load reads the whole layered configuration, merges the merged options,
// and checks the schema.
func Load(o Options) (*Loaded, error) {
	return nil, errors.New("config: not implemented yet")
}
