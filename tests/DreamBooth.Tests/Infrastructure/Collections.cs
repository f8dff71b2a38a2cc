namespace DreamBooth.Tests.Infrastructure;

/// <summary>
/// Tests that run gradient checkpointing (TorchSharp custom autograd functions) run one at a time. (Sporadic NaNs once
/// seen here came from a test module whose GroupNorm affine parameters TorchSharp had left uninitialised; that test now
/// sets them. Keeping these tests serial costs little.)
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CustomAutogradCollection
{
    public const string Name = "custom autograd (not parallel)";
}
