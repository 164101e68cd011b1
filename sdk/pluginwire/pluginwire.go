// Package pluginwire is the go-plugin wiring shared by syncplane's plugin
// host (core/pluginhost) and the validator SDK (sdk/validator): the
// handshake and the gRPC plugin type. Tenant authors never import it;
// validator.Serve does.
package pluginwire

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

// Handshake is the go-plugin handshake of validator plugins. The protocol
// version is the major version of the protobuf contract (validatorv1); the
// magic cookie never changes.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SYNCPLANE_VALIDATOR_PLUGIN",
	MagicCookieValue: "4f1c2a9e-syncplane-validator",
}

// Name is the plugin's name in the plugin map.
const Name = "validator"

// Plugin is the gRPC plugin of a validator. On the plugin side Impl builds
// the implementation (with the broker, to reach the host's reader); on the
// host side GRPCClient hands out a *Client.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl func(broker *plugin.GRPCBroker) validatorv1.ValidatorServer
}

// GRPCServer registers the validator service in the plugin process.
func (p *Plugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	validatorv1.RegisterValidatorServer(s, p.Impl(broker))
	return nil
}

// GRPCClient returns the host's view of the plugin.
func (p *Plugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{Validator: validatorv1.NewValidatorClient(c), Broker: broker}, nil
}

// Client is the host's handle on a running plugin.
type Client struct {
	Validator validatorv1.ValidatorClient
	Broker    *plugin.GRPCBroker
}

// Map is the plugin map both sides use.
func Map(p *Plugin) map[string]plugin.Plugin { return map[string]plugin.Plugin{Name: p} }
