// Package script reads and writes the scenario files the package tests run.
//
// A scenario file is a list of steps:
//
//	# optional comments
//	command key=value key=value
//	----
//	expected output (no blank lines)
//	<blank line>
package script
