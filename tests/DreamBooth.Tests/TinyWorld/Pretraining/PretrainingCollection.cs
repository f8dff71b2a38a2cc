namespace DreamBooth.Tests.TinyWorld.Pretraining;

/// <summary>
/// Pretraining seeds TorchSharp's process-wide generator (weight initialisation), so its tests run alone: other tests
/// building modules at the same time would draw from that generator and break the same-seed-same-weights check.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PretrainingCollection
{
    public const string Name = "TinyWorld pretraining (not parallel)";
}
