//! TODO: transport_params
