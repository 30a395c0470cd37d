package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// SocketPath returns the socket the CLI uses: flag, then RAMPART_SOCKET,
// then DefaultSocket.
func SocketPath(flag string) string {
	if flag != "" {
		return flag
	}
	if s := os.Getenv("RAMPART_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Client talks to a node over its socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the node listening at socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{Transport: &http.Transport{DialContext: dialer(socket)}}}
}

// RequestError is an error the node answered with.
type RequestError struct {
	Status int
	Body   Error
}

func (e *RequestError) Error() string { return e.Body.Error }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://rampart"+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the rampart node at %s (is `rampart up` running, and are you root?): %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		re := &RequestError{Status: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(&re.Body); err != nil || re.Body.Error == "" {
			re.Body.Error = fmt.Sprintf("node answered %s", resp.Status)
		}
		return nil, re
	}
	return resp, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Apply applies or deletes the objects of inputs, all or nothing.
func (c *Client) Apply(ctx context.Context, req ApplyRequest) (*ApplyResponse, error) {
	var r ApplyResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/apply", req, &r)
}

// Delete deletes objects by reference, all or nothing.
func (c *Client) Delete(ctx context.Context, refs []ObjectRef) (*ApplyResponse, error) {
	var r ApplyResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/delete", DeleteRequest{Refs: refs}, &r)
}

// Objects lists stored objects of a kind, optionally by namespace and name.
func (c *Client) Objects(ctx context.Context, kind, namespace, name string) (*ObjectList, error) {
	q := url.Values{"kind": {kind}}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if name != "" {
		q.Set("name", name)
	}
	var l ObjectList
	return &l, c.do(ctx, http.MethodGet, "/v1/objects?"+q.Encode(), nil, &l)
}

// Run starts a workload in a new endpoint.
func (c *Client) Run(ctx context.Context, req RunRequest) (*Endpoint, error) {
	var e Endpoint
	return &e, c.do(ctx, http.MethodPost, "/v1/endpoints", req, &e)
}

// Stop stops and removes an endpoint.
func (c *Client) Stop(ctx context.Context, namespace, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/endpoints/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), nil, nil)
}

// Endpoints lists the node's endpoints.
func (c *Client) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var eps []Endpoint
	return eps, c.do(ctx, http.MethodGet, "/v1/endpoints", nil, &eps)
}

// Logs streams an endpoint's output to w; with follow it keeps streaming
// until ctx ends.
func (c *Client) Logs(ctx context.Context, namespace, name string, follow bool, w io.Writer) error {
	path := "/v1/endpoints/" + url.PathEscape(namespace) + "/" + url.PathEscape(name) + "/logs"
	if follow {
		path += "?follow=true"
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// FlowFilter selects flows.
type FlowFilter struct {
	Follow    bool
	Verdict   string
	Namespace string
	Pod       string
	Last      int
}

// Flows calls fn for each flow the node has (the most recent ones first
// in time order), and with Follow for each new one until ctx ends.
func (c *Client) Flows(ctx context.Context, f FlowFilter, fn func(Flow) error) error {
	q := url.Values{}
	if f.Follow {
		q.Set("follow", "true")
	}
	for k, v := range map[string]string{"verdict": f.Verdict, "namespace": f.Namespace, "pod": f.Pod} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Last > 0 {
		q.Set("last", fmt.Sprint(f.Last))
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/flows?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var fl Flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			return fmt.Errorf("decode flow: %w", err)
		}
		if err := fn(fl); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// CA returns the node CA's state and its workloads' certificates.
func (c *Client) CA(ctx context.Context) (*CAStatus, error) {
	var out CAStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/ca", nil, &out)
}

// RotateCA takes one step of a root rotation.
func (c *Client) RotateCA(ctx context.Context, step string) (*CAStatus, error) {
	var out CAStatus
	return &out, c.do(ctx, http.MethodPost, "/v1/ca/rotate", RotateRequest{Step: step}, &out)
}
