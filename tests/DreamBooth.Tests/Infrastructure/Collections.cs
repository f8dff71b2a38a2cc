namespace DreamBooth.Tests.Infrastructure;

/// <summary>
/// Tests that run gradient checkpointing (TorchSharp custom autograd functions) never run in parallel with each other:
/// concurrent custom-function backward passes from several threads gave sporadic NaN gradients under heavy load in one
/// process, which training (one thread) never does.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CustomAutogradCollection
{
    public const string Name = "custom autograd (not parallel)";
}
