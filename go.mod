module github.com/eib-builder/eib

go 1.26.8

require (
	github.com/ProtonMail/go-crypto v1.5.2 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/urfave/cli/v3 v3.14.0 // indirect
)
